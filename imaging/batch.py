"""Deprecated: batch reconstruction moved to :mod:`imaging.run.batch`."""

from ._deprecation import moved_attribute

__getattr__ = moved_attribute(
    __name__,
    {
        name: f"imaging.run.batch:{name}"
        for name in (
            "BatchError",
            "EXIT_ITEM_FAILED",
            "TaskSpec",
            "available_cores",
            "collect_inputs",
            "estimate_task_bytes",
            "format_summary",
            "make_local_cluster",
            "reconstruct_many",
            "run_task",
        )
    },
)
