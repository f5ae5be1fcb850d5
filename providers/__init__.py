"""Provider adapters (real API clients) and their emulators, one package per cloud.

Providers never import each other; they share only ``base`` (the contract), ``http`` (one HTTP
client with the project's error mapping) and ``emulator`` (the emulator scaffold with faults).
"""
