"""The plugin object QGIS holds: it adds the Processing provider (and the Browser and drop support for .sarc
files) and removes them on unload."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import SarCodecProvider


class SarCodecPlugin:
    """Adds the "SAR codec" provider to the Processing toolbox; .sarc files open from the Browser or by drop."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: SarCodecProvider | None = None
        self.item_provider = None
        self.drop_handler = None

    def initProcessing(self) -> None:
        """Register the provider (called by QGIS, qgis_process and initGui)."""
        if self.provider is None:
            self.provider = SarCodecProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        from .browser import SarcDataItemProvider, SarcDropHandler

        self.initProcessing()
        self.item_provider = SarcDataItemProvider()
        QgsApplication.dataItemProviderRegistry().addProvider(self.item_provider)
        if self.iface is not None:
            self.drop_handler = SarcDropHandler()
            self.iface.registerCustomDropHandler(self.drop_handler)

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.item_provider is not None:
            QgsApplication.dataItemProviderRegistry().removeProvider(self.item_provider)
            self.item_provider = None
        if self.drop_handler is not None:
            self.iface.unregisterCustomDropHandler(self.drop_handler)
            self.drop_handler = None
