"""What every ``delivery`` entry has; the rest of an entry is checked by its channel plugin's ``Options`` model.

``reportctl.spec.loader`` merges the project's ``channels.<name>`` defaults under each entry and validates the result
with the plugin named by ``channel`` (email, webhook, slack, s3, file, or a third-party channel).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reportctl.spec.types import IDENTIFIER


class DeliveryEntry(BaseModel):
    """One entry of a spec's ``delivery`` list, before its channel's options are checked."""

    model_config = ConfigDict(extra="allow", frozen=True)

    channel: str = Field(description="Which channel plugin delivers: email, webhook, slack, s3, file, ...")
    id: str | None = Field(default=None, pattern=IDENTIFIER, description="Names this delivery; default the channel.")
