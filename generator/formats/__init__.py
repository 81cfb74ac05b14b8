"""Formats: what crosses the air gap, shared by the build side and the in-cluster side.

    envelope            the ferry's signed manifest (bundle + hashes + sequence + expiry)
    n9e                 the Nightingale objects compiled per site (rules, channels, ownership tags)
    secret_refs         ``?{age:path}`` references and the secret files they name
    age                 ASCII-armored age encryption (the only module that imports pyrage)
    encrypted_secret    the EncryptedSecret object compiled/ carries instead of a Secret, and how
                        the agent opens it with the site's key

Secrets never cross in plain text: the inventory holds references, ``secrets/<site>/`` holds
ciphertext, compile copies that ciphertext into EncryptedSecret objects, and only the agent
decrypts. Depends only on ``generator.core``.
"""
