"""Reasons in plain words: HTCondor's hold codes, and job- or pool-supplied text printed as text, never as markup."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import typer
from rich.console import Console

from sweep.cli_common import user_errors
from sweep.errors import StateError
from sweep.reasons import HOLD_CODES, explain_hold
from sweep.state import ItemState, ItemStatus
from sweep.tracking import status_payload, unsettled_summary
from sweep.views import status_table, waiting_reasons

TRICKY = "exit code 23: [verify] python.tar.gz: sha256 mismatch [bold]expected[/bold] x"


# HTCondor's HoldReasonCode values as its manual lists them (Job ClassAd attributes): the ones whose
# meaning sweep's users meet, checked word by word against what each code is.
@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "condor_hold"), (3, "job policy"), (6, "start"), (12, "output files"), (13, "input files"),
        (14, "initial directory"), (21, "machine's policy"), (22, "event log"), (26, "system policy"),
        (34, "more memory"), (46, "allowed duration"), (47, "execution time"),
    ],
)  # fmt: skip
def test_hold_codes_follow_htcondor(code: int, words: str) -> None:
    assert words in HOLD_CODES[code]


def test_hold_code_table_has_no_swapped_or_invented_entries() -> None:
    assert "output" in HOLD_CODES[12] and "input" in HOLD_CODES[13]  # TransferOutputError, TransferInputError
    assert "memory" not in HOLD_CODES[21]  # 21 is StartdHeldJob; running out of memory is 34
    assert set(HOLD_CODES) <= set(range(1, 28)) | set(range(32, 37)) | set(range(43, 49))


def test_an_unknown_hold_code_shows_htcondors_own_reason_verbatim() -> None:
    assert explain_hold(999, 0, "Something new in HTCondor 26") == "Something new in HTCondor 26"
    assert explain_hold(13, 2, "Transfer input files failure") == (
        "input files could not be transferred to the execute machine: Transfer input files failure"
    )


def _manifest() -> SimpleNamespace:
    return SimpleNamespace(
        name="s", backend={"name": "condor"}, items=[{"item": "f1_r0", "fraction": "1", "replica": 0}]
    )


def test_reasons_print_literally_in_the_table_and_in_json() -> None:
    statuses = {
        "f1_r0": ItemStatus(item="f1_r0", state=ItemState.FAILED, reason=TRICKY, host="[red]node[/red]")
    }
    console = Console(record=True, width=400)
    console.print(status_table(_manifest(), statuses))  # type: ignore[arg-type]
    text = console.export_text()
    assert TRICKY in text and "[red]node[/red]" in text
    payload = json.loads(json.dumps(status_payload(_manifest(), statuses)))  # type: ignore[arg-type]
    assert payload["items"][0]["reason"] == TRICKY


def test_an_error_message_prints_literally(capsys: pytest.CaptureFixture[str]) -> None:
    @user_errors
    def fails() -> None:
        raise StateError(TRICKY)

    with pytest.raises(typer.Exit) as exited:
        fails()
    assert exited.value.exit_code == 2
    assert TRICKY in capsys.readouterr().err.replace("\n", "")


def test_waiting_items_say_why_once_per_reason() -> None:
    why = "no slot matches its requirements: `Memory >= 99` is true on none of 4 slots"
    statuses = {f"f{i}": ItemStatus(item=f"f{i}", state=ItemState.IDLE, reason=why) for i in range(4)}
    statuses["done"] = ItemStatus(item="done", state=ItemState.DONE)
    assert waiting_reasons(statuses) == [f"4 idle: {why}"]
    assert unsettled_summary(statuses) == f"4 idle; f0, f1, f2 and 1 more: idle {why}"


def test_a_results_row_with_an_unknown_or_missing_column_fails_loudly() -> None:
    from sweep import results_schema as C

    labels = ["Effusion"]
    complete = dict.fromkeys(C.result_columns(labels), None)
    assert list(C.result_row(complete, labels)) == C.result_columns(labels)
    with pytest.raises(C.SchemaError, match=r"unknown \['auc_macr'\], missing \['auc_macro'\]"):
        C.result_row({**{k: v for k, v in complete.items() if k != C.AUC_MACRO}, "auc_macr": 0.7}, labels)
    with pytest.raises(C.SchemaError, match=r"missing \['auc_Effusion'\]"):
        C.result_row(dict.fromkeys(C.REQUIRED_COLUMNS, None), labels)


def test_the_schema_states_are_the_backends_states() -> None:
    from sweep import results_schema as C

    assert ItemState is C.ItemState and tuple(state.value for state in ItemState) == C.STATES
