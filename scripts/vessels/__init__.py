"""Vessel structure: the centreline graph of a vessel map (``graph``), and what is measured on it
(``segments``: segment-level artery/vein evaluation)."""
