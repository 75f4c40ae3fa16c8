"""DEX's serving API: authenticated, rate-limited, observable predictions from the registry's
champion model. No Pulumi imports here."""
