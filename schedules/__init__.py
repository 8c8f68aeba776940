"""Schedule generators: each is `(graph, cluster, **options) -> Schedule`, looked up by name in the registry."""
