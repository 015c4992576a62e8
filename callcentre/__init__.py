"""The call centre: which waiting caller goes to which agent (`routing`, pure), and an agent's
desk: their state, the caller offered to them, taken and ended (`desk`)."""
