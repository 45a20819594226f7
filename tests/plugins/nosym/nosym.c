/* SPDX-License-Identifier: Apache-2.0 */
/* nosym: a shared object without the entry symbol; the loader must refuse it. */
__attribute__((visibility("default"))) int not_a_backend(void);

__attribute__((visibility("default"))) int not_a_backend(void)
{
        return 42;
}
