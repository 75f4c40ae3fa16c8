"""DEX's training app: next-day maximum temperature from the gold features, tracked and
registered in MLflow, promoted only when it beats the champion. No Pulumi imports here."""
