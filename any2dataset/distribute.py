"""The all-in-one's parts on a cluster: `download(distributor="ray")` and `distributor="pyspark"`.

With multiprocessing, `processes_count` parts (each `a2d-shard --part I/N` of the shards) run
in worker processes on this machine (all_in_one.run_parts). Here each part is one Ray task or
one Spark task, wherever the cluster puts it, running the same code: `run_part` (read | shard
| fetch | write in one process), or with resizing the part's pipeline of stage commands. So
the dataset is the same; the output folder must be storage every node writes to (s3://... or
a shared filesystem at the same path).

A task that fails is retried `plan.part_retries` times (img2dataset's max_shard_retry: Ray's
max_retries, Spark's task failures) and skips the shards it had finished (the finished shards
are read again in the task). Errors of ours (bad input,
usage) are not retried: they would fail again. ray and pyspark are imported here only; a
cluster already started (ray.init(), an active SparkContext, RAY_ADDRESS, spark-submit's
master) is used as it is, else a local one is started for the run.
"""

import dataclasses
import os
import sys

from .errors import A2DError, MissingExtra, UsageProblem, WorkerFailed
from .plan import Plan, pipe_form, settled

DISTRIBUTORS = ("multiprocessing", "ray", "pyspark")


def run_parts_on(distributor: str, plan: Plan, parts: int, progress: bool = False, quiet: bool = False,
                 environment: dict | None = None) -> None:
    """Run the (unsettled, numbered) plan as `parts` tasks of `distributor` ("ray" or
    "pyspark"); raise WorkerFailed naming the first part that failed."""
    if plan.inputs == ["-"]:
        raise UsageProblem(f"distributor={distributor!r} needs a url_list its tasks can read, not standard input")
    # A retried task skips the shards it finished. (The folder holds no others of this run's
    # numbers: overwrite emptied it, extend numbers after them.)
    plan = dataclasses.replace(plan, skip_done=True)
    if distributor == "ray":
        run_on_ray(plan, parts, quiet=quiet, environment=environment)
    elif distributor == "pyspark":
        run_on_spark(plan, parts, quiet=quiet, environment=environment)
    else:
        raise ValueError(f"not a cluster distributor: {distributor}")


def run_one_part(plan: Plan, part: int, parts: int, quiet: bool = False,
                 environment: dict | None = None) -> A2DError | None:
    """One part, as a task runs it; an error of ours is returned (not raised: retrying it
    would fail again), anything else raises, and the task is retried. `environment`: the
    stage processes' variables (video2dataset's tmp_dir)."""
    from .all_in_one import run_part, run_stages
    from .console import Console

    plan = dataclasses.replace(plan, shard=dataclasses.replace(plan.shard, part=(part, parts)))
    try:
        if plan.subsample is not None:  # the part's pipeline: a2d-shard --part I/N --skip-done reads OUT itself
            plan = dataclasses.replace(plan, fetch_workers=1,
                                       subsample=dataclasses.replace(plan.subsample, workers=1))
            run_stages(pipe_form(plan), quiet=quiet, environment=environment)
        else:
            run_part(settled(plan), 0, 1, Console(f"any2dataset (part {part}/{parts})", quiet=quiet))
    except A2DError as error:
        return error
    return None


def _failure(part: int, parts: int, error: A2DError, engine: str) -> WorkerFailed:
    return WorkerFailed(f"any2dataset part {part}/{parts} ({engine} task): {error}", error.exit_code)


def run_on_ray(plan: Plan, parts: int, quiet: bool = False, environment: dict | None = None,
               task=run_one_part) -> None:
    """Each part a Ray task of one CPU, retried plan.part_retries times when it raises or its
    worker dies. `task(plan, part, parts, quiet, environment)` is run_one_part (tests give a
    flaky one)."""
    try:
        import ray
    except ImportError:
        raise MissingExtra("distributor='ray'", "ray", "ray") from None
    started = not ray.is_initialized()
    if started:  # RAY_ADDRESS names a cluster to join; without it Ray starts one on this machine
        ray.init(include_dashboard=False, log_to_driver=not quiet)
    retries = plan.part_retries
    remote = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(task)
    pending = [remote.remote(plan, part, parts, quiet, environment) for part in range(parts)]
    try:
        for part, reference in enumerate(pending):
            try:
                error = ray.get(reference)
            except ray.exceptions.RayError as failed:  # still failing after its retries
                raise WorkerFailed(f"any2dataset part {part}/{parts} (Ray task) failed after {retries} "
                                   f"retries: {_last_line(failed)}") from None
            if error is not None:
                raise _failure(part, parts, error, "Ray")
    except BaseException:
        for reference in pending:
            ray.cancel(reference, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def run_on_spark(plan: Plan, parts: int, quiet: bool = False, environment: dict | None = None,
                 task=run_one_part) -> None:
    """One Spark job of `parts` tasks, each retried plan.part_retries times: a local master
    (none given by spark-submit) allows that many failures per task, and a cluster's context
    started here gets spark.task.maxFailures (one already running keeps its own)."""
    try:
        from pyspark import SparkConf, SparkContext
    except ImportError:
        raise MissingExtra("distributor='pyspark'", "spark", "pyspark") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local mode: tasks run this Python
    started = SparkContext._active_spark_context is None
    retries = plan.part_retries
    ours = {"spark.master": f"local[*,{retries + 1}]", "spark.task.maxFailures": str(retries + 1)}
    if quiet:
        ours["spark.ui.showConsoleProgress"] = "false"
    conf = SparkConf().setAppName("any2dataset")
    ours = {key: value for key, value in ours.items() if not conf.contains(key)}  # spark-submit's and users' win
    conf.setAll(ours.items())
    try:
        context = SparkContext.getOrCreate(conf)
    except Exception as error:  # (pyspark raises its own types, or RuntimeError in older versions)
        raise A2DError(f"distributor='pyspark': Spark did not start (it needs Java 17): {_last_line(error)}") from None
    try:
        errors = (context.parallelize(range(parts), parts)
                  .map(lambda part: (part, task(plan, part, parts, quiet, environment)))
                  .collect())
    except Exception as failed:  # a task failed on every attempt
        raise WorkerFailed(f"any2dataset: a Spark task failed after {retries} retries: "
                           f"{_last_line(failed)}") from None
    finally:
        if started:
            context.stop()
            # A stopped context leaves its settings in the JVM's system properties, where the next
            # run's SparkConf would take them for the user's (and keep this run's retries): undo ours.
            for key in ours:
                SparkContext._jvm.java.lang.System.clearProperty(key)
    for part, error in sorted(errors):
        if error is not None:
            raise _failure(part, parts, error, "Spark")


def _last_line(error: BaseException) -> str:
    """The gist of a cluster's error: the last line of its (often remote) traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
