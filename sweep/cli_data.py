"""`sweep data synth|shard`: make and prepare datasets in the ChestX-ray14 layout (thin commands)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from sweep.cli_common import JsonFlag, ProgressBar, print_json, say, user_errors, whole_number
from sweep.data.layout import SHARD_SIZES, SYNTH_SIZES

data_app = typer.Typer(help="Make and prepare datasets in the ChestX-ray14 layout.", no_args_is_help=True)


@data_app.command("synth")
@user_errors
def data_synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="New folder for the dataset.")],
    images: Annotated[int, whole_number("--images", "Number of images.", 1, 10_000_000)] = 2000,
    size: Annotated[int, whole_number("--size", "Image side in pixels.", *SYNTH_SIZES)] = 64,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives the same dataset.")
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Generate a synthetic look-alike of NIH ChestX-ray14 (same layout, labels and imbalance)."""
    from sweep.data.synth import synthesize

    with ProgressBar("synthesizing images") as report:
        summary = synthesize(out_dir, images=images, size=size, seed=seed, progress=report)
    if as_json:
        print_json({**asdict(summary), "folder": str(summary.folder)})
        return
    say(f"wrote {summary}")


@data_app.command("shard")
@user_errors
def data_shard(
    src: Annotated[Path, typer.Argument(metavar="SRC", help="A folder in the ChestX-ray14 layout.")],
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="New folder for the TFRecord shards.")],
    size: Annotated[int, whole_number("--size", "Resize images to SIZE x SIZE pixels.", *SHARD_SIZES)] = 64,
    as_json: JsonFlag = False,
) -> None:
    """Validate a ChestX-ray14-layout folder and write patient-split TFRecord shards + manifest.json."""
    from sweep.data.shard import shard_dataset

    with ProgressBar("sharding images") as report:
        manifest = shard_dataset(src, out_dir, size=size, progress=report)
    if as_json:
        print_json(
            {
                **manifest.sweep_record(),
                "shards": len(manifest.shards()),
                "bytes": manifest.bytes,
                "splits": {name: split.images for name, split in manifest.splits.items()},
            }
        )
        return
    say(f"wrote {manifest.summary()}")
