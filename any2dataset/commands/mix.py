"""a2d-mix: several record streams into one, by weight, round-robin or in blocks."""

from types import SimpleNamespace

import click

from ..cli import command, common_options, input_paths_argument, on_error_option, output_option
from ..errors import UsageProblem
from ..mix import MODES, Mixer, MixOptions, parse_weights
from ..streams import STDIO, RecordReader, RecordWriter, display_name


@command(
    "a2d-mix",
    "mix several record streams into one",
    "Mix the records of several inputs into one stream: at random in proportion to --weights (seeded, "
    "so the same seed gives the same order), round-robin, or interleaved in fixed blocks. Each input "
    "line is passed on byte for byte; an input is read only when its turn comes. When an input ends the "
    "others go on (--until all) or the mix stops (--until first). `-` is standard input (at most once).",
    "a2d-mix --weights 3,1 --seed 1 laion.jsonl coco.jsonl | a2d-write mixed/",
)
@input_paths_argument
@click.option("--weights", metavar="W1,W2,...", help="One weight per input: random mode takes each record from "
              "an input with probability proportional to its weight (among inputs not yet ended); interleave "
              "takes blocks of that many records. [default: all equal]")
@click.option("--mode", type=click.Choice(MODES), default="random", show_default=True,
              help="random: by weight, seeded; round-robin: one record from each input in turn; interleave: "
                   "a block of records from each input in turn.")
@click.option("--block", type=click.IntRange(1), help="With --mode interleave: records per block from every "
              "input. [default: the weights, else 1]")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random mode.")
@click.option("--until", type=click.Choice(["all", "first"]), default="all", show_default=True,
              help="all: when an input ends, go on with the others until every input has ended; first: stop "
                   "when the first input ends.")
@on_error_option
@output_option()
@common_options
def main(inputs, weights, mode, block, seed, until, on_error, output, console):
    paths = list(inputs) or [STDIO]
    if paths.count(STDIO) > 1:
        raise UsageProblem("standard input (-) can be mixed in only once")
    console.waiting_on_terminal([path for path in paths if path == STDIO])
    options = MixOptions(mode=mode, weights=parse_weights(weights) if weights else None, block=block, seed=seed,
                         until=until)
    readers = [RecordReader([path], on_error=on_error) for path in paths]
    mixer = Mixer([reader.lines() for reader in readers], options)
    with RecordWriter(output) as out:
        out.write_lines(console.track(mixer))
    console.skipped(_all_of(readers))
    console.info(summary(paths, mixer, out.count))


def _all_of(readers: list[RecordReader]) -> SimpleNamespace:
    """The readers' bad-line counts as one reader's, for console.skipped."""
    skipped = [reader.first_skipped for reader in readers if reader.first_skipped is not None]
    return SimpleNamespace(skipped=sum(reader.skipped for reader in readers),
                           first_skipped=skipped[0] if skipped else None,
                           count=sum(reader.count for reader in readers))


def summary(paths: list[str], mixer: Mixer, written: int) -> str:
    """`4000 records written: 3012 from a.jsonl, 988 from b.jsonl (ended)`."""
    parts = [f"{taken} from {display_name(path)}" + (" (ended)" if ended else "")
             for path, taken, ended in zip(paths, mixer.taken, mixer.ended)]
    text = f"{written} records written: {', '.join(parts)}"
    if mixer.stopped_by is not None:
        text += f"; stopped when {display_name(paths[mixer.stopped_by])} ended (--until first)"
    return text


if __name__ == "__main__":
    main()
