"""Push-grasp policies: networks, rewards, replay, agents and training."""
