"""Secrets that cross the air gap encrypted: declared in the inventory, never in plain text outside the site.

    inventory  ?{age:redis/password}            a reference; the value lives in the secret file
    secrets/<site>/redis/password.age           ASCII-armored age, encrypted to the site's keys (+ team keys)
    compiled/  EncryptedSecret (ciphertext)     the file's bytes, copied as they are: compile never encrypts
    agent      materialize -> Secret            decrypted with the site's private key, server-side applied

``refs`` parses references and maps them to files; ``crypto`` is the only module that imports
pyrage; ``store`` sets, rotates and reads secret files (``gen secrets``); ``stage`` is the compile
stage that turns references into EncryptedSecret objects and rewritten parameters; ``encrypted``
builds and materializes EncryptedSecret objects (the agent imports it, so it and ``crypto`` never
import the compiler).
"""
