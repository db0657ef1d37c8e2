"""graphql_schema"""
