"""Rendering is pure: fixed inputs give the checked-in text, and no user string adds a command."""

import os
from dataclasses import dataclass
from pathlib import Path

import htcondor2
import pytest

from sweep.errors import RenderError, SpecError
from sweep.pack import EnvManifest, Tarball
from sweep.render import (
    QUEUE_VARIABLES,
    classad_string,
    item_arguments,
    render_submission,
    submit_expression,
    submit_path,
)
from sweep.spec import DEFAULT_REQUIREMENTS, SweepSpec, parse_fractions, validate_name

GOLDEN = Path(__file__).parent / "golden"
INTENDED_COMMANDS = {
    "universe", "executable", "arguments", "transfer_executable", "initialdir", "log", "output", "error",
    "should_transfer_files", "when_to_transfer_output", "transfer_input_files", "transfer_output_files",
    "transfer_output_remaps", "request_cpus", "request_memory", "request_disk", "requirements",
    "job_machine_attrs", "job_machine_attrs_history_length", "environment", "on_exit_hold",
    "on_exit_hold_subcode", "on_exit_hold_reason", "max_retries", "batch_name", "MY.SweepName",
    "MY.SweepSubmitToken", "MY.SweepItem", "MY.SweepFraction", "MY.SweepReplica",
}  # fmt: skip


def tarball(path: str, compression: str = "gzip") -> Tarball:
    return Tarball(path=Path(path), sha256="ab" * 32, bytes=1000, files=10, compression=compression)


ENV = EnvManifest(
    key="0123456789abcdef",
    python_version="3.11.7",
    platform="linux-x86_64",
    glibc_min="2.35",
    interpreter=tarball("/pool/envs/cache/python-0123456789abcdef.tar.gz"),
    site_packages=tarball("/pool/envs/cache/site-0123456789abcdef.tar.zst", "zstd"),
    requirements=Path("/pool/envs/requirements-job.txt"),
)
CODE = tarball("/pool/sweeps/demo/sweep-code.tar.gz")


@dataclass(frozen=True)
class Plan:
    files: tuple[str, ...]


def plans_for(spec: SweepSpec) -> dict[str, Plan]:
    # a 10 % item reads one training shard, a 100 % item all ten: as a real plan would
    return {
        item.name: Plan(
            ("manifest.json",)
            + tuple(f"train-{k:05d}.tfrecord" for k in range(max(1, round(float(item.fraction) * 10))))
            + ("validation-00000.tfrecord", "test-00000.tfrecord")
        )
        for item in spec.items()
    }


def render(spec: SweepSpec, **kwargs):
    return render_submission(
        spec, ENV, CODE, plans_for(spec),
        sweep_dir=Path(f"/pool/sweeps/{spec.name}"), data_dir=Path("/pool/shards"),
        wrapper=Path(f"/pool/sweeps/{spec.name}/job-wrapper.sh"), **kwargs,
    )  # fmt: skip


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SWEEP_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"rendered text differs from {path}; SWEEP_UPDATE_GOLDEN=1 rewrites it"


DEMO = SweepSpec(name="demo", fractions=parse_fractions("0.1..1.0"), replicas=5)


def test_demo_submission_matches_golden_file():
    check_golden("submit-demo.sub", render(DEMO).full_text())


def test_no_avx_requirement_and_test_environment_golden():
    spec = SweepSpec(
        name="old-cpus", fractions=parse_fractions("0.5,1"), replicas=2, requirements=None, epochs=3
    )
    check_golden(
        "submit-no-require.sub",
        render(spec, environment={"SWEEP_TEST_SIGILL_BELOW": "x86_64-v3"}).full_text(),
    )


def test_demo_parses_into_fifty_items_with_avx2_sigill_hold_and_tarballs():
    rendered = render(DEMO)
    submit = htcondor2.Submit(rendered.full_text())
    rows = list(submit.itemdata())
    assert len(rows) == 50 == len(rendered.rows)
    assert {(row["fraction"], row["replica"]) for row in rows} == {
        (f, str(r))
        for f in ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]
        for r in range(5)
    }
    assert rows == rendered.rows  # what condor_submit would read equals what we submit as itemdata
    assert submit["requirements"] == DEFAULT_REQUIREMENTS
    assert "ExitSignal =?= 4" in submit["on_exit_hold"] and "ExitCode =?= 132" in submit["on_exit_hold"]
    assert "lacks AVX2" in submit["on_exit_hold_reason"]
    inputs = submit["transfer_input_files"]
    for path in (ENV.interpreter.path, ENV.site_packages.path, CODE.path):
        assert str(path) in inputs
    assert set(submit.keys()) == INTENDED_COMMANDS
    assert submit["batch_name"] == "demo" and submit["MY.SweepName"] == '"demo"'


def test_small_items_transfer_fewer_files():
    rows = {row["item"]: row for row in render(DEMO).rows}
    assert len(rows["f0.1_r0"]["inputs"].split(",")) < len(rows["f1_r0"]["inputs"].split(","))


def test_arguments_for_the_local_backend_match_the_submit_arguments():
    rendered = render(DEMO)
    submit = htcondor2.Submit(rendered.full_text())
    row = rendered.rows[7]
    expanded = submit["arguments"].strip('"')
    for key in ("fraction", "replica", "seed", "subset_seed"):
        expanded = expanded.replace(f"$({key})", row[key])
    assert expanded.split() == item_arguments(DEMO, row)


@pytest.mark.parametrize(
    "evil",
    [
        "x\nqueue 5",
        'x" && true || "',
        'demo\n+Owner = "root"',
        "a b",
        "queue",
        "+Attr = 1",
        "$(Cluster)",
        "a#b",
    ],
)
def test_a_sweep_name_cannot_add_submit_commands(evil):
    # names are validated before rendering; and even one that slips through (or a harmless
    # keyword such as "queue") is either refused by the filters or stays a plain value
    if evil != "queue":
        with pytest.raises(SpecError):
            validate_name(evil)
    spec = SweepSpec(name=evil, fractions=parse_fractions("1"), replicas=1)
    try:
        rendered = render(spec)
    except RenderError:
        return
    submit = htcondor2.Submit(rendered.full_text())
    assert set(submit.keys()) == INTENDED_COMMANDS
    assert len(list(submit.itemdata())) == 1


@pytest.mark.parametrize(
    "expression",
    ["true\nqueue 100", "(has_avx2 =?= true", 'Microarch >= "x86_64-v3', "", "$(Cluster) > 0", "a b c"],
)
def test_bad_requirements_are_refused(expression):
    with pytest.raises(RenderError, match="requirements"):
        submit_expression(expression)


def test_custom_requirements_pass_through():
    spec = SweepSpec(
        name="t",
        fractions=parse_fractions("1"),
        replicas=1,
        requirements='(Memory > 1024) && (Arch == "X86_64")',
    )
    assert (
        htcondor2.Submit(render(spec).full_text())["requirements"] == '(Memory > 1024) && (Arch == "X86_64")'
    )


@pytest.mark.parametrize("path", ["relative/x", "/with space/x", "/a,b", "/a$(b)", "/a#b", "/a\nb", "/a'b"])
def test_unsafe_paths_refused(path):
    with pytest.raises(RenderError, match="accepted"):
        submit_path(path)


def test_data_folder_with_a_comma_is_refused_with_advice():
    with pytest.raises(RenderError, match="move or link"):
        render_submission(
            DEMO, ENV, CODE, plans_for(DEMO), sweep_dir=Path("/pool/sweeps/demo"),
            data_dir=Path("/pool/my,shards"), wrapper=Path("/pool/sweeps/demo/job-wrapper.sh"),
        )  # fmt: skip


def test_classad_string_refuses_quotes():
    assert classad_string("demo") == '"demo"'
    with pytest.raises(RenderError):
        classad_string('a"b')


def test_queue_variables_put_the_file_list_last():
    assert QUEUE_VARIABLES[-1] == "inputs"  # HTCondor gives the last variable the rest of the line


def test_export_tflite_reaches_the_job_only_when_asked() -> None:
    from sweep.render import job_arguments

    plain = SweepSpec(name="x", fractions=parse_fractions("1"), replicas=1)
    asked = SweepSpec(name="x", fractions=parse_fractions("1"), replicas=1, export="tflite")
    values = {"fraction": "1", "replica": "0", "seed": "1", "subset_seed": "2"}
    assert "--export" not in job_arguments(plain, **values)
    assert job_arguments(asked, **values)[-2:] == ["--export", "tflite"]
    assert SweepSpec.from_dict(asked.to_dict()).export == "tflite"
    assert SweepSpec.from_dict({**plain.to_dict(), "export": None}).export is None
