"""Face sign-in: align, embed, store enrolled users, recognise per track, report presence."""
