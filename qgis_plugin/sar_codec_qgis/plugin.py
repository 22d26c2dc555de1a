"""The plugin object QGIS holds: it adds the Processing provider and removes it on unload."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import SarCodecProvider


class SarCodecPlugin:
    """Adds the "SAR codec" provider to the Processing toolbox; the plugin has no other GUI."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: SarCodecProvider | None = None

    def initProcessing(self) -> None:
        """Register the provider (called by QGIS, qgis_process and initGui)."""
        if self.provider is None:
            self.provider = SarCodecProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
