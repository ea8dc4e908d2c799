"""The log-prefix contract shared by the nft compiler (encode) and the log parser (decode)."""
