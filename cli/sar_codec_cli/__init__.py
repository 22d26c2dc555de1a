"""The sar-codec command line: thin click commands, each one call into sar_codec."""
