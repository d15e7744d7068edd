"""The all-in-ones' plans (plain options objects) and their pipe form agree: the pipe form,
parsed by the stage commands themselves, gives back exactly the plan's options; and the
options types' defaults are the commands' defaults (so a flag left out means the same)."""

import dataclasses

import pytest

from any2dataset import all_in_one, video_all_in_one
from any2dataset.commands import fetch, read, shard, subsample, write
from any2dataset.fetch import FetchOptions
from any2dataset.plan import command_line, pipe_form, settled
from any2dataset.read import ReadOptions
from any2dataset.shard import ShardOptions
from any2dataset.write import WriteOptions

COMMANDS = {"read": read, "shard": shard, "fetch": fetch, "subsample": subsample, "write": write}


def parsed(stage: str, arguments: list[str]) -> dict:
    command = COMMANDS[stage].main
    return dict(command.make_context(command.name, list(arguments)).params)


def built_by_the_commands(stages: list[list[str]]) -> dict:
    """Each stage's options as its command builds them from the pipe form's arguments."""
    params = {name: parsed(name, arguments) for name, *arguments in stages}
    built = {"inputs": list(params["read"]["inputs"]), "read": read.read_options(**params["read"]),
             "shard": shard.shard_options(**params["shard"]), "fetch": fetch.fetch_options(**params["fetch"]),
             "fetch_workers": params["fetch"]["workers"], "write": write.write_options(**params["write"]),
             "output_folder": params["write"]["output_folder"]}
    built["subsample"] = subsample.subsample_options(**params["subsample"]) if "subsample" in params else None
    return built


IMG2DATASET_CALLS = [
    {"url_list": "urls.txt"},
    {"url_list": "u.parquet", "input_format": "parquet", "compute_hash": "md5", "verify_hash": "['sha', 'sha256']",
     "user_agent_token": "me", "image_size": 64, "resize_mode": "center_crop", "encode_format": "webp",
     "resize_only_if_bigger": True, "incremental_mode": "extend", "timeout": 3, "retries": 1, "caption_col": "c",
     "save_additional_columns": ["a", "b"], "max_image_area": 1e6, "max_aspect_ratio": 3, "min_image_size": 8,
     "extract_exif": False, "skip_reencode": True, "encode_quality": 80, "upscale_interpolation": "cubic"},
    {"url_list": "urls.csv", "disable_all_reencoding": True, "processes_count": 2, "thread_count": 16,
     "output_format": "parquet", "number_sample_per_shard": 100, "oom_shard_count": 3, "per_host": 0,
     "disallowed_header_directives": [], "compute_hash": None, "all_columns": True, "incremental_mode": "overwrite"},
    {"url_list": "v.csv", "encode_format": "png", "encode_quality": 9, "clip_col": "clips",
     "output_format": "tfrecord"},
]
VIDEO2DATASET_CALLS = [
    {"url_list": "v.csv"},
    {"url_list": "v.parquet", "input_format": "parquet", "caption_col": "cap", "clip_col": "spans",
     "save_additional_columns": ["lang"], "output_format": "webdataset",
     "encode_formats": {"video": "mp4", "audio": "m4a"},
     "config": {"subsampling": {"ClippingSubsampler": {"args": {"min_length": 1, "max_length": 4,
                                                                 "max_length_strategy": "first"}},
                                "ResolutionSubsampler": {"args": {"video_size": 128, "resize_mode": "scale,crop,pad"}},
                                "FrameSubsampler": {"args": {"frame_rate": 5}},
                                "AudioRateSubsampler": {"args": {"sample_rate": 16000, "n_audio_channels": 1,
                                                                 "encode_format": "flac"}},
                                "FFProbeSubsampler": {"args": {}}},
                "storage": {"number_sample_per_shard": 10, "oom_shard_count": 4},
                "distribution": {"processes_count": 1, "thread_count": 8}, "reading": {"timeout": 5}}},
]


CALLS = [(all_in_one.img2dataset_plan, call) for call in IMG2DATASET_CALLS] + \
    [(video_all_in_one.video2dataset_plan, call) for call in VIDEO2DATASET_CALLS]


@pytest.mark.parametrize("make, call", CALLS, ids=[f"{make.__name__}-{i}" for i, (make, _) in enumerate(CALLS)])
def test_the_pipe_form_parsed_by_the_commands_is_the_plan(tmp_path, make, call):
    pytest.importorskip("PIL")
    plan = settled(make(**{"output_folder": str(tmp_path / "out"), **call}))
    built = built_by_the_commands(pipe_form(plan))
    for name, value in built.items():
        assert value == getattr(plan, name), (name, value, getattr(plan, name))
    fields = {field.name for field in dataclasses.fields(plan)}
    # (distributor and part_retries say how the parts run, not what a pipeline does)
    assert fields - {"skip_done", "extend", "distributor", "part_retries"} == set(built)
    assert command_line(plan).startswith("a2d-read ") and command_line(plan).count(" | ") == len(pipe_form(plan)) - 1


def test_option_defaults_are_the_commands_defaults():
    assert read.read_options(**parsed("read", [])) == ReadOptions()
    assert fetch.fetch_options(**parsed("fetch", [])) == FetchOptions()
    assert write.write_options(**parsed("write", ["out"])) == WriteOptions()
    assert shard.shard_options(**parsed("shard", [])) == ShardOptions()


def test_no_module_outside_the_command_layer_imports_click():
    from pathlib import Path

    package = Path(all_in_one.__file__).parent
    importers = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                       if path.parent.name != "commands" and path.name != "cli.py"
                       and any(line.strip().startswith(("import click", "from click"))
                               for line in path.read_text().splitlines()))
    assert importers == []
