"""`python -m sweep.job`: the command every execute node runs.

Exit 0 with metrics.json on success. On any exception: error.json (stage, type, message,
traceback) and exit 1, so the submit side can say what went wrong without reading logs.
The old-CPU test switch acts first, before TensorFlow is imported, as a real SIGILL would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sweep.job import host, outputs
from sweep.job.export import FORMATS as EXPORT_FORMATS
from sweep.job.run import JobConfig, run_job
from sweep.job.stages import Stages

EXIT_FAILED = 1
DEFAULT_LEARNING_RATE = 3e-3  # with batch norm; 1e-3 left 3-epoch jobs clearly under-trained (measured)


class ArgumentError(Exception):
    """A bad command line; raised instead of argparse's exit so error.json still gets written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArgumentError(message)


def _fraction(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value.is_finite() and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sweep.job", description="Train and evaluate one sweep item.")
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with manifest.json and the shard files"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for metrics.json, models, predictions"
    )
    parser.add_argument(
        "--fraction", type=_fraction, required=True, help="share of the training images, (0, 1]"
    )
    parser.add_argument("--replica", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True, help="weights and shuffling")
    parser.add_argument(
        "--subset-seed", type=int, required=True, help="which patients; shared by a replica's fractions"
    )
    parser.add_argument("--epochs", type=_positive, default=5)
    parser.add_argument("--batch-size", type=_positive, default=32)
    parser.add_argument(
        "--learning-rate", type=float, default=DEFAULT_LEARNING_RATE, help="Adam's learning rate"
    )
    parser.add_argument(
        "--image-size", type=_positive, default=None, help="resize to this side (default: the shards')"
    )
    parser.add_argument(
        "--threads", type=_positive, default=None, help="default: OMP_NUM_THREADS, else every core"
    )
    parser.add_argument(
        "--export",
        choices=("none", *EXPORT_FORMATS),
        default="none",
        help="also convert the model in the job (default none: model.keras only; `sweep export` converts later)",
    )
    return parser


def _out_from(argv: Sequence[str]) -> Path | None:
    """--out, read leniently, so that even a bad command line leaves an error.json where it can be found."""
    lenient = argparse.ArgumentParser(add_help=False)
    lenient.add_argument("--out", type=Path)
    known, _ = lenient.parse_known_args(argv)
    return known.out


def parse_config(argv: Sequence[str]) -> JobConfig:
    args = build_parser().parse_args(argv)
    return JobConfig(
        data=args.data,
        out=args.out,
        fraction=args.fraction,
        replica=args.replica,
        seed=args.seed,
        subset_seed=args.subset_seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        image_size=args.image_size,
        threads=args.threads or host.threads_to_use(),
        export=args.export,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        build_parser().print_help()
        return 0
    stages = Stages()
    stages.current = "arguments"
    try:
        config = parse_config(argv)
        host.play_old_cpu_if_asked()
        run_job(config, stages)
    except Exception as error:  # noqa: BLE001 - every failure must become error.json
        out = _out_from(argv)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            outputs.write_error(out, stages.current, error)
        print(f"sweep.job failed in stage {stages.current}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
