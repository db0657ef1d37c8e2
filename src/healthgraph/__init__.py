"""healthgraph"""
