"""face3d.argtypes: argparse value types give one-line usage errors."""

from __future__ import annotations

import argparse

import pytest

from face3d.argtypes import float_in, float_list, int_at_least, int_list


def test_float_in_bounds():
    assert float_in(0, 1)("0") == 0.0 and float_in(0, 1)("1") == 1.0
    assert float_in()("-3.5") == -3.5
    with pytest.raises(argparse.ArgumentTypeError, match=r"1.5 is outside \[0, 1\]"):
        float_in(0, 1)("1.5")
    with pytest.raises(argparse.ArgumentTypeError, match=r"0 is outside \(0, inf\]"):
        float_in(0, open_low=True)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a number, got 'a'"):
        float_in()("a")


def test_float_list_parses_and_checks_each():
    assert float_list(0, 1)("0, 0.25,1,") == [0.0, 0.25, 1.0]
    with pytest.raises(argparse.ArgumentTypeError, match="outside"):
        float_list(0, 1)("0.5,2")
    with pytest.raises(argparse.ArgumentTypeError, match="at least one"):
        float_list()(" , ")


def test_int_at_least():
    assert int_at_least(1)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="must be >= 1, got 0"):
        int_at_least(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="expected an integer"):
        int_at_least(1)("1.5")


def test_int_list():
    assert int_list(0)("4, 5,5") == [4, 5, 5]
    assert int_list()("-2,3") == [-2, 3]
    with pytest.raises(argparse.ArgumentTypeError, match="must be >= 0, got -1"):
        int_list(0)("1,-1")
    with pytest.raises(argparse.ArgumentTypeError, match="expected an integer, got 'x'"):
        int_list()("1,x")
    with pytest.raises(argparse.ArgumentTypeError, match="at least one integer"):
        int_list(0)(",")


def test_parser_turns_them_into_usage_errors(capsys):
    ap = argparse.ArgumentParser(prog="p")
    ap.add_argument("--w", type=float_list(0, 1))
    assert ap.parse_args(["--w", "0.1,0.2"]).w == [0.1, 0.2]
    with pytest.raises(SystemExit) as exc:
        ap.parse_args(["--w", "0.1,7"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "p: error: argument --w: 7 is outside [0, 1]"
