"""The facade's logic: what each route does, in terms of Kubernetes objects."""
