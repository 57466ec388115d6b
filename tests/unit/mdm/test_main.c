/* unit.mdm entry point: evaluation tables, signal_sources config, then the engine vs the mock MDM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

int run_eval_tests(void);
int run_engine_tests(void);
int run_config_tests(void);
int run_webhook_tests(void);

int main(void)
{
    int failed = run_eval_tests() + run_config_tests();
    return failed + run_engine_tests() + run_webhook_tests();
}
