"""sewer_segmentation: defect masks for sewer-pipe CCTV frames learned from boxes and a few polygons."""

__version__ = "0.1.0"
