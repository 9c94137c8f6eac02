"""The planner: a pure function from a resource to an ordered stage DAG (both executors use it)."""

from genfab.planner.build import PlanError, plan
from genfab.planner.model import Plan, PlannedStage, Resources
from genfab.planner.pipelines import INPUT

__all__ = ["INPUT", "Plan", "PlanError", "PlannedStage", "Resources", "plan"]
