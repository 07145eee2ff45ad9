// Number of global operator new calls so far (alloc_counter.cpp replaces them).
#pragma once

long allocation_count();
