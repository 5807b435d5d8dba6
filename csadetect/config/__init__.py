"""YAML defaults and runner profiles (package data)."""
