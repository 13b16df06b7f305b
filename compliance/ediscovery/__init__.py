"""The eDiscovery archive: what an approved export holds, built as a stream
(``compliance.ediscovery.archive``); its format is ``audit.ediscovery_format``."""
