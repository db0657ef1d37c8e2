"""The health graph over GraphQL: Strawberry types, queries, mutations and subscriptions."""
