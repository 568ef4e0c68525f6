"""The per-query runner: one input in, one output out, an exit code per failure class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dpkube.engine.datasets import demo_metadata
from dpkube.models.examples import query_payload
from dpkube.models.payloads import Library
from dpkube.models.runner import ErrorKind, RunnerInput, RunnerOutput
from dpkube.runner.__main__ import main
from dpkube.runner.execute import execute
from dpkube.runner.sinks import FileSink
from dpkube_testing.builders import runner_input


def run(tmp_path: Path, data: dict[str, Any]) -> tuple[int, RunnerOutput]:
    source, target = tmp_path / "in.json", tmp_path / "out.json"
    source.write_text(json.dumps(data))
    code = main(["--input", str(source), "--output", str(target), "--no-stdout"])
    return code, RunnerOutput.model_validate_json(target.read_text())


def test_query_releases_and_reports_its_charge(tmp_path: Path) -> None:
    code, output = run(tmp_path, runner_input())
    assert code == 0
    assert output.ok and output.response["columns"] == ["NB_ROW"]
    assert output.cost is not None and output.cost.epsilon == 0.1


def test_dummy_mode_runs_on_generated_rows(tmp_path: Path) -> None:
    data = runner_input(Library.OPENDP, mode="dummy", dummy_nb_rows=50, dummy_seed=1)
    code, output = run(tmp_path, {**data, "dataset": {**data["dataset"], "uri": None}})
    assert code == 0
    assert isinstance(output.response, float)


def test_cost_mode_reads_no_data(tmp_path: Path) -> None:
    data = runner_input(mode="cost")
    code, output = run(tmp_path, {**data, "dataset": {**data["dataset"], "uri": "/nonexistent.csv"}})
    assert code == 0
    assert output.response is None and output.cost is not None


def test_refused_payload_exits_2_with_its_message(tmp_path: Path) -> None:
    payload = query_payload(Library.SMARTNOISE_SQL, query_str="SELECT COUNT(*) FROM other")
    code, output = run(tmp_path, runner_input(payload=payload))
    assert code == ErrorKind.PAYLOAD_REJECTED.exit_code == 2
    assert output.error is not None and output.error.kind == "payload_rejected"
    assert "only the table 'df'" in output.error.message


def test_library_failure_exits_3_naming_the_library(tmp_path: Path) -> None:
    payload = query_payload(Library.SMARTNOISE_SQL, query_str="SELECT AVG(bill) FROM df")
    code, output = run(tmp_path, runner_input(payload=payload))
    assert code == ErrorKind.EXTERNAL_LIBRARY.exit_code == 3
    assert output.error is not None and output.error.library == Library.SMARTNOISE_SQL


def test_unreadable_dataset_exits_4(tmp_path: Path) -> None:
    data = runner_input()
    code, output = run(tmp_path, {**data, "dataset": {**data["dataset"], "uri": "/nonexistent.csv"}})
    assert code == ErrorKind.DATASET_UNAVAILABLE.exit_code == 4
    assert output.error is not None and output.error.kind == "dataset_unavailable"


def test_malformed_input_exits_2_naming_fields_not_values(tmp_path: Path) -> None:
    code, output = run(tmp_path, {"library": "opendp", "payload": {"opendp_json": "secret-value"}})
    assert code == ErrorKind.BAD_INPUT.exit_code
    assert output.error is not None and "dataset: Field required" in output.error.message
    assert "secret-value" not in output.error.message


def test_input_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DPKUBE_RUNNER_INPUT", json.dumps(runner_input()))
    assert main([]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_runner_input_refuses_a_payload_of_another_library() -> None:
    with pytest.raises(ValueError, match="query_str"):
        RunnerInput.model_validate(runner_input(Library.OPENDP, payload=query_payload(Library.SMARTNOISE_SQL)))


def test_file_sink_leaves_no_temporary_file(tmp_path: Path) -> None:
    FileSink(tmp_path / "out.json").write(RunnerOutput(ok=True))
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_cold_sql_runner_never_imports_torch(tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps(runner_input()))
    probe = (
        "import sys; from dpkube.runner.__main__ import main; "
        f"code = main(['--input', {str(source)!r}, '--no-stdout']); "
        "print('torch' in sys.modules, 'diffprivlib' in sys.modules, code)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False", "0"]


def test_warm_runner_waits_for_its_one_input(tmp_path: Path) -> None:
    source, target = tmp_path / "in.json", tmp_path / "out.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "dpkube.runner", "--warm", "--input", str(source), "--output", str(target),
         "--no-stdout"], env={**os.environ, "DPKUBE_LIBRARIES": "opendp"},
    )  # fmt: skip
    time.sleep(1.0)
    assert process.poll() is None
    staging = tmp_path / "staging.json"
    staging.write_text(json.dumps(runner_input(Library.OPENDP)))
    staging.rename(source)
    assert process.wait(timeout=60) == 0
    assert RunnerOutput.model_validate_json(target.read_text()).ok


def test_leave_to_read_is_asked_before_the_data_is_read() -> None:
    asked: list[str] = []
    job = RunnerInput.model_validate(runner_input(dataset={"uri": "/nonexistent.csv",
                                                           "metadata": demo_metadata("PENGUIN").lomas_dict()}))
    output = execute(job, before_read=lambda: asked.append("read"))
    assert asked == ["read"] and output.error is not None and output.error.kind == "dataset_unavailable"


def test_a_refused_query_never_asks_to_read() -> None:
    asked: list[str] = []
    payload = query_payload(Library.SMARTNOISE_SQL, query_str="SELECT COUNT(*) FROM other")
    output = execute(RunnerInput.model_validate(runner_input(payload=payload)), before_read=lambda: asked.append("x"))
    assert asked == [] and output.error is not None and output.error.kind == "payload_rejected"


def test_dummy_and_cost_runs_never_ask_to_read() -> None:
    asked: list[str] = []
    dummy = runner_input(Library.OPENDP, mode="dummy")
    for data in ({**dummy, "dataset": {**dummy["dataset"], "uri": None}}, runner_input(mode="cost")):
        assert execute(RunnerInput.model_validate(data), before_read=lambda: asked.append("x")).ok
    assert asked == []


def test_a_failure_names_the_class_of_its_cause() -> None:
    payload = query_payload(Library.SMARTNOISE_SQL, query_str="SELECT AVG(bill) FROM df")
    output = execute(RunnerInput.model_validate(runner_input(payload=payload)))
    assert output.error is not None and output.error.exception and " " not in output.error.exception
