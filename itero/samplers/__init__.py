"""Which responses a preference algorithm trains on: pair selection (``pairing``) and which model
generates each prompt's samples (``sources``)."""
