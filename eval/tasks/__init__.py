"""Task metrics, apart from the models they score: classification fidelity and detection mAP."""
