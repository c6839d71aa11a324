"""Thin HTTP handlers per domain: parse, call one service function, return."""
