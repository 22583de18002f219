"""Images for the model: open_clip encoder, projector, profiles, embedding cache, service, similar cases."""
