"""Vessel structure and what is measured on it: the centreline (``skeleton``) and its graph
(``graph``), segment-level artery/vein evaluation (``segments``), the optic disc and its zones
(``disc``), the biomarkers (``measures``) and the vessels that enter CRAE/CRVE (``zone_b``)."""
