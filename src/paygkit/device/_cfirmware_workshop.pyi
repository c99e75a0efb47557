"""The workshop build of _cfirmware (the reset token taken): the same types."""

from paygkit.device._cfirmware import *  # noqa: F403 - one build of the same source
