"""Perception: heightmaps, saliency, taught appearance, occluded-region inference, attention."""
