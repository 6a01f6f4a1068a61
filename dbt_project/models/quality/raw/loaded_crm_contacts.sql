{{ loaded_rows(source('crm', 'crm_contacts'), 'crm_contacts') }}
