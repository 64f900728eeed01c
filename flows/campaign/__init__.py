"""The campaign plan: campaign.yaml (spec), matrix sheets, expansion, variant ids, prompts and lint.

``plan_campaign(folder)`` is the entry point; it imports no engine and no torch. Great Expectations (slow to
import) is only imported when a sheet has to be checked and its check is not cached.
"""

from flows.campaign.errors import CampaignError, Problem
from flows.campaign.plan import Plan, plan_campaign

__all__ = ["CampaignError", "Problem", "Plan", "plan_campaign"]
