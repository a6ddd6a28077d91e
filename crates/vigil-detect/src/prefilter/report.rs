//! Diagnostics over a compiled rule set: the clauses the prefilter requires of each rule, and
//! whether it lets a given raw event through to each rule (used by the bench example).

impl crate::RuleSet {
    /// Per rule of `dataset`: its title and the literal clauses the prefilter requires (each
    /// clause needs one of its literals; the first is searched by the automaton). Diagnostics.
    #[doc(hidden)]
    pub fn prefilter_report(&self, dataset: &str) -> Vec<(String, Vec<Vec<String>>)> {
        let Some(ds) = self.datasets.iter().find(|d| d.name == dataset) else {
            return vec![];
        };
        ds.rules
            .iter()
            .map(|r| {
                let clauses = match &ds.prefilter {
                    None => vec![],
                    Some(pf) => {
                        r.required
                            .iter()
                            .map(|c| {
                                c.lits
                                    .iter()
                                    .map(|&i| pf.patterns[i as usize].clone())
                                    .chain(c.finds.iter().map(|&i| {
                                        format!("{} (searched)", pf.finder_lits[i as usize])
                                    }))
                                    .collect()
                            })
                            .collect()
                    }
                };
                (self.rules[r.rule].title.clone(), clauses)
            })
            .collect()
    }

    /// Per rule of `dataset` (in [`Self::prefilter_report`] order): whether the prefilter lets
    /// the raw event through to that rule. Diagnostics.
    #[doc(hidden)]
    pub fn prefilter_pass(&self, dataset: &str, raw: &str) -> Vec<bool> {
        let Some(ds) = self.datasets.iter().find(|d| d.name == dataset) else {
            return vec![];
        };
        match &ds.prefilter {
            None => vec![true; ds.rules.len()],
            Some(pf) => {
                let scan = pf.scan(raw);
                ds.rules
                    .iter()
                    .map(|r| scan.may_match(&r.required))
                    .collect()
            }
        }
    }
}
