"""Classical and learned baselines every dehazing table is read against."""

from cliphaze.baselines.aodnet import AODNet, load_aodnet
from cliphaze.baselines.dcp import (
    DCPResult,
    dark_channel,
    dcp_transmission,
    dehaze_dcp,
    guided_filter,
)

__all__ = ["AODNet", "load_aodnet", "DCPResult", "dark_channel", "dcp_transmission", "dehaze_dcp", "guided_filter"]
