/* Runs every pki unit test group; the exit status counts the failures. */
#include "test_pki.h"

int main(void)
{
    int failed = 0;
    failed += test_pki_jwk_run();
    failed += test_pki_jws_run();
    failed += test_pki_csr_run();
    failed += test_pki_ca_run();
    failed += test_pki_issue_run();
    failed += test_pki_tlsalpn_run();
    failed += test_pki_template_run();
    failed += test_pki_hw_module_run();
    failed += test_pki_perm_id_run();
    failed += test_pki_prp_run();
    return failed == 0 ? 0 : 1;
}
