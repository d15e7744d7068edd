"""Model stages: Python callables run over batches of records, after a2d-subsample's transforms.

A model is a function `model(records, **options) -> records`: it gets a list of records
(payloads as bytes under `files`, as `record.decode_payloads` leaves them) and returns the
same records, in the same order, with new fields or payloads. It is named

- `module:function` (the module imported from sys.path, so a user's own file works),
- a shipped model: `optical_flow`, `whisper`, `caption` (MODELS below), or
- an entry point of group `any2dataset.models` (a package's `name = "module:function"`).

Options are `key=value` texts (the command's `--model-option`), given to every model whose
signature takes that key; `NAME.key=value` gives it to the model NAME only (its short
name: the shipped name, the entry point or the function's name). A model taking a `device`
parameter gets the device: "cpu", or "cuda" when asked, or with "auto" when torch sees a
GPU. A model loads its weights once per process (functools.cache on a loader does it).

Only records whose status is success (or that have none yet) go to a model; the others
pass through untouched, in their place. A model marks a record it cannot use with
`failed(record, kind, message)`; an exception fails the batch's records one by one (each
is tried alone, so one bad record fails only itself) with error_kind `other`. An A2DError
(a missing extra, a bad option) ends the run: it is the whole run's problem.
"""

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .. import record as rec
from ..errors import A2DError, UsageProblem

ENTRY_POINT_GROUP = "any2dataset.models"
# The shipped models: short name -> module:function (each module imports its extra when used).
MODELS = {
    "optical_flow": "any2dataset.subsample.optical_flow:optical_flow",
    "whisper": "any2dataset.subsample.transcribe:whisper",
    "caption": "any2dataset.subsample.caption:caption",
}
DEVICES = ("auto", "cpu", "cuda")
FAILED = "failed_to_subsample"
MESSAGE_LENGTH = 500

Batch = Callable[[list[dict]], list[dict]]


@dataclass(frozen=True)
class ModelOptions:
    models: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # key=value or NAME.key=value, as given
    batch_size: int = 8
    device: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "options", tuple(self.options))
        if self.batch_size < 1:
            raise UsageProblem(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.device not in DEVICES:
            raise UsageProblem(f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.options and not self.models:
            raise UsageProblem("--model-option without --model: no model to give it to")
        for text in self.options:
            _split_option(text)


def failed(record: dict, kind: str, message: str) -> dict:
    """Mark a record the model cannot use (status failed_to_subsample, payloads dropped)."""
    return rec.failure(record, FAILED, kind if kind in rec.ERROR_KINDS else "other", str(message)[:MESSAGE_LENGTH])


@dataclass
class _Model:
    name: str
    function: Callable
    options: dict

    def __call__(self, records: list[dict]) -> list[dict]:
        return self.function(records, **self.options)


def load_models(options: ModelOptions, *, device: str | None = None) -> list[_Model]:
    """The models named, imported and given their options; checked (UsageProblem, MissingExtra)
    before any work: an unknown name, an option no model takes, a shipped model's missing extra."""
    named = [(name, resolve(name)) for name in options.models]
    short = [_short_name(name) for name in options.models]
    given: list[dict] = [{} for _ in named]
    for text in options.options:
        target, key, value = _split_option(text)
        takers = [i for i, (_, function) in enumerate(named)
                  if (target is None or target == short[i]) and _takes(function, key)]
        if not takers:
            if target is not None and target not in short:
                raise UsageProblem(f"--model-option {text}: no model named {target} (given: {', '.join(short)})")
            whom = f"model {target} takes no option" if target is not None else "no model given takes an option"
            raise UsageProblem(f"--model-option {text}: {whom} {key!r}")
        for i in takers:
            given[i][key] = value
    models = []
    for (name, function), chosen in zip(named, given):
        check = getattr(function, "check", None)
        if check is not None:
            check(chosen)  # a shipped model's extra and option values, said once in the parent
        if _takes(function, "device", by_keyword_only=True):
            chosen = {"device": device or resolve_device(options.device), **chosen}
        models.append(_Model(name, function, chosen))
    return models


def resolve(name: str) -> Callable:
    """A model's function from its name (module:function, shipped name or entry point)."""
    target = MODELS.get(name) or (name if ":" in name else _entry_point(name))
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and module_name.startswith(error.name or "\0"):
            raise UsageProblem(f"--model {name}: no module {module_name} (is it on PYTHONPATH?)") from None
        raise
    function = module
    for part in attribute.split(".") if attribute else ():
        function = getattr(function, part, None)
        if function is None:
            raise UsageProblem(f"--model {name}: {module_name} has no {attribute}")
    if not callable(function):
        raise UsageProblem(f"--model {name}: {target} is not callable")
    return function


def _entry_point(name: str) -> str:
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return point.value
    raise UsageProblem(f"--model {name}: not module:function, a shipped model ({', '.join(MODELS)}) nor an entry "
                       f"point of group {ENTRY_POINT_GROUP}")


@functools.cache
def resolve_device(device: str) -> str:
    """auto -> cuda when torch sees a GPU, else cpu; cuda without one is a usage problem."""
    if device == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise UsageProblem("--device cuda needs torch (with CUDA): pip install 'any2dataset[torch]'") from None
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UsageProblem("--device cuda: torch sees no GPU here (torch.cuda.is_available() is false)")
    return "cpu"


def _split_option(text: str) -> tuple[str | None, str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise UsageProblem(f"--model-option {text!r}: expected KEY=VALUE or MODEL.KEY=VALUE")
    target, dot, key = name.rpartition(".")
    return (target if dot else None), key, value


def _short_name(name: str) -> str:
    return name.rpartition(":")[2].rpartition(".")[2] if ":" in name else name


def _takes(function: Callable, key: str, by_keyword_only: bool = False) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return not by_keyword_only  # a builtin: let the call say
    if key in parameters and parameters[key].kind in (inspect.Parameter.KEYWORD_ONLY,
                                                      inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return True
    return not by_keyword_only and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def model_stage(options: ModelOptions) -> Batch:
    """The models in order as one function over a list of records (any length: each model
    sees batches of at most options.batch_size of the records it may use)."""
    models = load_models(options)

    def stage(records: list[dict]) -> list[dict]:
        for model in models:
            records = _run_model(model, records, options.batch_size)
        return records

    return stage


def run_models(records: Iterable[dict], options: ModelOptions, stage: Batch | None = None) -> Iterator[dict]:
    """A record stream through the models, in batches of options.batch_size usable records
    (the records passing through keep their place)."""
    stage = stage or model_stage(options)
    waiting, usable = [], 0
    for record in records:
        waiting.append(record)
        usable += _usable(record)
        if usable >= options.batch_size:
            yield from stage(waiting)
            waiting, usable = [], 0
    if waiting:
        yield from stage(waiting)


def _usable(record: dict) -> bool:
    return record.get("status") in (None, "success")


def _run_model(model: _Model, records: list[dict], batch_size: int) -> list[dict]:
    """The usable records in batches; the others keep their place."""
    out = list(records)
    places = [i for i, record in enumerate(records) if _usable(record)]
    for start in range(0, len(places), batch_size):
        chosen = places[start:start + batch_size]
        for i, done in zip(chosen, _batch(model, [records[i] for i in chosen])):
            out[i] = done
    return out


def _batch(model: _Model, records: list[dict]) -> list[dict]:
    if not records:
        return []
    try:
        done = model(list(records))
    except A2DError:
        raise  # a missing extra, a bad option: the whole run's problem
    except Exception as error:  # noqa: BLE001 - whatever the model raises: each record tried alone
        if len(records) == 1:
            return [failed(records[0], "other", f"model {model.name}: {type(error).__name__}: {error}")]
        return [out for record in records for out in _batch(model, [record])]
    if not isinstance(done, list) or len(done) != len(records) or not all(isinstance(r, dict) for r in done):
        what = f"{len(done)} records" if isinstance(done, list) else type(done).__name__
        return [failed(record, "other", f"model {model.name} returned {what} for a batch of {len(records)} "
                                        f"records (it must return the records it was given)")
                for record in records]
    return done


# Option values come as text from the command line, as themselves from Python: read either.

def number(name: str, value, kind: type = float, least: float | None = None):
    """An option's value as `kind`, at least `least`; UsageProblem naming it otherwise."""
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise UsageProblem(f"model option {name}: expected {'an integer' if kind is int else 'a number'}, "
                           f"not {value!r}") from None
    if least is not None and result < least:
        raise UsageProblem(f"model option {name}: must be at least {least:g}, not {value!r}")
    return result


def flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise UsageProblem(f"model option {name}: expected true or false, not {value!r}")
