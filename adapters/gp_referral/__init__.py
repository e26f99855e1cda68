"""GP referrals over HL7 v2 (REF^I12..I15): parse, map with ``mappings/gp_referral``, land, ACK."""
