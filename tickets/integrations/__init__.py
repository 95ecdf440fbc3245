"""Links to other systems: HMAC signing, the transactional outbox, and the 110 / provincial exchange (outbound
in ``exchange``, inbound in ``inbound``)."""
