"""Reports (DESIGN §6, §7): the items a hit travels as (:mod:`.hits`), the one path from a hit to a
sealed, signed Art. 13 report (:mod:`.records`), the report and review-item schemas
(:mod:`.schema`), evidence sealing and signatures (:mod:`.crypto`), reading report files
(:mod:`.files`) and the NCMEC CyberTipline export (:mod:`.ncmec`)."""
