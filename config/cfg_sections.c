/*
 * config section registry: the top-level YAML keys, in load order. A new
 * section is a cfg_<section>.c file plus one line here; sections that refer
 * to others (policies -> cas) come after them.
 */
#include "config/cfg_int.h"

const struct cfg_section *const cfg_sections[] = {
    &cfg_section_server, &cfg_section_storage, &cfg_section_acme,
    &cfg_section_attestation, &cfg_section_cas, &cfg_section_signal_sources,
    &cfg_section_templates, &cfg_section_roles, &cfg_section_policies,
    &cfg_section_events,
};
const size_t cfg_nsections = nitems(cfg_sections);
