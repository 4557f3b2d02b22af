"""face3d.io: the resumable JSONL stream used by the benchmarks."""

from __future__ import annotations

import json

from face3d.io import resume_jsonl


def test_resume_jsonl_keeps_or_clears(tmp_path):
    path = tmp_path / "sub" / "bench.jsonl"
    assert resume_jsonl(path, resume=True) == []  # nothing yet; folder created
    path.write_text(json.dumps({"a": 1}) + "\n\n" + json.dumps({"a": 2}) + "\n")
    assert resume_jsonl(path, resume=True) == [{"a": 1}, {"a": 2}]
    assert resume_jsonl(path, resume=False) == [] and not path.exists()
