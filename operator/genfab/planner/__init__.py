"""The planner: a pure function from a resource to an ordered stage DAG (both executors use it)."""

from genfab.api.pipeline import INPUT
from genfab.planner.build import PlanError, plan
from genfab.planner.model import Plan, PlannedStage, Resources, stage_config

__all__ = ["INPUT", "Plan", "PlanError", "PlannedStage", "Resources", "plan", "stage_config"]
