"""SAR codec: a QGIS Processing provider over the sar_codec library (compress, decompress, compare)."""


def classFactory(iface):
    """QGIS's entry point; imports the plugin only when QGIS asks for it."""
    from .plugin import SarCodecPlugin

    return SarCodecPlugin(iface)
