"""Hand-eye calibration: target detection, pose collection, solve, report, store."""
